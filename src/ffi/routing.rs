//! `liminal_routing`: routing functions from C callbacks, and built-ins.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::ffi::boundary::{
    self, bytes, free_handle, guard, new_handle, out_ptr, read, utf8, utf8_opt, with, Handle,
};
use crate::ffi::callbacks::{
    liminal_route_callback, liminal_route_result, UserData, LIMINAL_ROUTE_NONE,
    LIMINAL_ROUTE_SELECTED,
};
use crate::ffi::error::liminal_status;
use crate::ffi::message::liminal_message;
use crate::ffi::runtime::liminal_runtime;
use crate::message::Message;
use crate::routing::{Builtin, ConsumerState, RoutingFunction};

/// A loaded routing function. Thread-safe; free with `liminal_routing_free`
/// (groups using it keep it alive).
pub struct liminal_routing {
    pub(crate) function: RoutingFunction,
}

impl Handle for liminal_routing {
    const NAME: &'static str = "routing";
}

/// What a routing function sees of one consumer. Every pointer is borrowed
/// and valid only for the duration of the call that received it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct liminal_consumer_view {
    /// The consumer id (UTF-8, NUL-terminated).
    pub id: *const c_char,
    /// Deliveries reserved for or held by it now (not yet answered).
    pub in_flight: u32,
    /// The most it may hold.
    pub max_in_flight: u32,
    /// Its host-reported buffer depth.
    pub buffer_depth: u32,
    /// Its affinity tags (`tag_count` strings).
    pub tags: *const *const c_char,
    /// Number of tags.
    pub tag_count: usize,
}

/// A built-in router: one of `LIMINAL_BUILTIN_*`.
pub type liminal_builtin = i32;
/// The first consumer in id order with capacity.
pub const LIMINAL_BUILTIN_FIRST_WITH_CAPACITY: liminal_builtin = 0;
/// The consumer with the fewest in flight (ties: first in id order).
pub const LIMINAL_BUILTIN_LEAST_LOADED: liminal_builtin = 1;
/// The least-loaded consumer carrying the tag named by a text field.
pub const LIMINAL_BUILTIN_AFFINITY: liminal_builtin = 2;
/// Consistent hashing (a hash ring) on a text, integer or boolean field: a
/// key keeps its consumer while it lives and has room, and moves minimally
/// when membership changes.
pub const LIMINAL_BUILTIN_STICKY_KEY: liminal_builtin = 3;

/// C copies of consumer views, kept alive while C reads them.
///
/// A routing callback sees every consumer on every evaluation; making a C
/// string of every id and tag each time cost ≈0.3 µs per consumer. So a
/// table remembers which consumers (and which tag lists) it was made from
/// and, while an evaluation sees the same ones in the same order, refreshes
/// only the numbers ([`ViewTable::refresh`]). The table keeps the ids and tag
/// lists of the last evaluation alive until the next one; a function shared
/// by several groups makes its table afresh whenever the group changes.
pub(crate) struct ViewTable {
    made_from: Vec<(Arc<str>, Arc<[String]>)>,
    _ids: Vec<CString>,
    _tags: Vec<Vec<CString>>,
    _tag_ptrs: Vec<Vec<*const c_char>>,
    pub(crate) views: Vec<liminal_consumer_view>,
}

// SAFETY: the raw pointers in `views` and `_tag_ptrs` point into the heap
// buffers of the `CString`s and vectors this table owns, which move with it
// and are never shared mutably; the table is plain owned data.
unsafe impl Send for ViewTable {}

impl ViewTable {
    pub(crate) fn new(states: &[ConsumerState]) -> Self {
        let made_from = states
            .iter()
            .map(|s| (Arc::clone(&s.id), Arc::clone(&s.tags)))
            .collect();
        let ids: Vec<CString> = states.iter().map(|s| boundary::c_string(&s.id)).collect();
        let tags: Vec<Vec<CString>> = states
            .iter()
            .map(|s| s.tags.iter().map(|t| boundary::c_string(t)).collect())
            .collect();
        let tag_ptrs: Vec<Vec<*const c_char>> = tags
            .iter()
            .map(|list| list.iter().map(|t| t.as_ptr()).collect())
            .collect();
        let views = states
            .iter()
            .enumerate()
            .map(|(i, s)| liminal_consumer_view {
                id: ids[i].as_ptr(),
                in_flight: s.in_flight,
                max_in_flight: s.max_in_flight,
                buffer_depth: s.buffer_depth,
                tags: if tag_ptrs[i].is_empty() {
                    std::ptr::null()
                } else {
                    tag_ptrs[i].as_ptr()
                },
                tag_count: tag_ptrs[i].len(),
            })
            .collect();
        Self {
            made_from,
            _ids: ids,
            _tags: tags,
            _tag_ptrs: tag_ptrs,
            views,
        }
    }

    /// Make the table show `states`: when they are the consumers it was made
    /// from (the same id and tag list objects, in the same order), only the
    /// numbers are copied; otherwise it is made afresh.
    pub(crate) fn refresh(&mut self, states: &[ConsumerState]) {
        let same = self.made_from.len() == states.len()
            && self
                .made_from
                .iter()
                .zip(states)
                .all(|((id, tags), s)| Arc::ptr_eq(id, &s.id) && Arc::ptr_eq(tags, &s.tags));
        if !same {
            *self = Self::new(states);
            return;
        }
        for (view, s) in self.views.iter_mut().zip(states) {
            view.in_flight = s.in_flight;
            view.max_in_flight = s.max_in_flight;
            view.buffer_depth = s.buffer_depth;
        }
    }
}

/// Makes a C routing callback a Rust routing function.
struct CRoute {
    function: unsafe extern "C" fn(
        *mut c_void,
        *const liminal_message,
        *const liminal_consumer_view,
        usize,
        *mut *const c_char,
    ) -> liminal_route_result,
    user: UserData,
    /// The table of the last evaluation, reused by the next. Calls of one
    /// routing function never overlap, so the lock is uncontended; should it
    /// ever be held, the call makes a table of its own.
    table: Mutex<ViewTable>,
}

impl CRoute {
    fn call(&self, message: &Arc<Message>, states: &[ConsumerState]) -> Option<String> {
        let mut own;
        let mut shared = self.table.try_lock();
        let table: &mut ViewTable = match shared.as_deref_mut() {
            Some(table) => {
                table.refresh(states);
                table
            }
            None => {
                own = ViewTable::new(states);
                &mut own
            }
        };
        let handle = liminal_message {
            message: Arc::clone(message),
        };
        let mut selected: *const c_char = std::ptr::null();
        // SAFETY: the host's callback, called with live borrowed data as the
        // header describes.
        let answer = unsafe {
            (self.function)(
                self.user.ptr(),
                &handle,
                table.views.as_ptr(),
                table.views.len(),
                &mut selected,
            )
        };
        match answer {
            LIMINAL_ROUTE_SELECTED => {
                // SAFETY: the callback wrote a NUL-terminated string (or NULL).
                let id = unsafe { utf8(selected, "selected_id") };
                match id {
                    Ok(id) => Some(id.to_owned()),
                    Err(_) => std::panic::resume_unwind(Box::new(
                        "routing callback selected a NULL or non-UTF-8 id",
                    )),
                }
            }
            LIMINAL_ROUTE_NONE => None,
            // A failure is a crash of the routing function; `resume_unwind`
            // reports it without running the panic hook.
            _ => std::panic::resume_unwind(Box::new("routing callback reported failure")),
        }
    }
}

/// Load a routing function from a C callback. Its identity is the 64-bit
/// content hash of `identity` (`identity_len` bytes, at least 1): loading
/// identical bytes again while the first is alive returns that same function
/// and releases this `callback` at once (its `free_user` runs before this
/// returns). `name` (optional, UTF-8) is for diagnostics. The library owns
/// `callback` from this call on, even when it fails. `*out` owns the result.
/// Errors: `LIMINAL_NULL_ARGUMENT`, `LIMINAL_INVALID_ARGUMENT`, `LIMINAL_SHUT_DOWN`.
#[no_mangle]
pub extern "C" fn liminal_routing_new(
    runtime: *const liminal_runtime,
    callback: liminal_route_callback,
    identity: *const u8,
    identity_len: usize,
    name: *const c_char,
    out: *mut *mut liminal_routing,
) -> liminal_status {
    let user = UserData::new(callback.user, callback.free_user);
    with(runtime, move |runtime| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        if runtime.runtime.is_shut_down() {
            return Err(crate::Error::ShutDown.into());
        }
        let function = callback
            .function
            .ok_or_else(|| boundary::null("callback.function"))?;
        if identity_len == 0 {
            return Err(boundary::invalid("identity must not be empty"));
        }
        // SAFETY: readable for `identity_len` bytes.
        let identity = unsafe { bytes(identity, identity_len, "identity") }?;
        // SAFETY: NULL or NUL-terminated per the contract.
        let name = unsafe { utf8_opt(name, "name") }?.unwrap_or("c-routing");
        let route = CRoute {
            function,
            user,
            table: Mutex::new(ViewTable::new(&[])),
        };
        let loaded = runtime
            .runtime
            .load_routing(identity, name, move |message, states| {
                route.call(message, states)
            });
        *out = new_handle(liminal_routing { function: loaded });
        Ok(())
    })
}

/// A built-in router (`LIMINAL_BUILTIN_*`). `field` names the message field
/// for `LIMINAL_BUILTIN_AFFINITY` and `LIMINAL_BUILTIN_STICKY_KEY` (required
/// there, ignored otherwise). `*out` owns the result.
/// Errors: `LIMINAL_NULL_ARGUMENT` (`out`, or a required `field`),
/// `LIMINAL_INVALID_ARGUMENT` (an unknown kind, an empty or non-UTF-8
/// `field`).
#[no_mangle]
pub extern "C" fn liminal_routing_builtin(
    kind: liminal_builtin,
    field: *const c_char,
    out: *mut *mut liminal_routing,
) -> liminal_status {
    guard(|| {
        // SAFETY: NULL or writable.
        let out = unsafe { out_ptr(out, "out") }?;
        let field_name = || -> Result<String, boundary::Failure> {
            // SAFETY: NUL-terminated per the contract.
            let field = unsafe { utf8(field, "field") }?;
            if field.is_empty() {
                return Err(boundary::invalid("field is empty"));
            }
            Ok(field.to_owned())
        };
        let builtin = match kind {
            LIMINAL_BUILTIN_FIRST_WITH_CAPACITY => Builtin::FirstWithCapacity,
            LIMINAL_BUILTIN_LEAST_LOADED => Builtin::LeastLoaded,
            LIMINAL_BUILTIN_AFFINITY => Builtin::Affinity {
                field: field_name()?,
            },
            LIMINAL_BUILTIN_STICKY_KEY => Builtin::StickyKey {
                field: field_name()?,
            },
            other => return Err(boundary::invalid(format!("unknown builtin {other}"))),
        };
        *out = new_handle(liminal_routing {
            function: RoutingFunction::builtin(builtin),
        });
        Ok(())
    })
}

/// The routing function's 64-bit content hash (0 for NULL).
#[no_mangle]
pub extern "C" fn liminal_routing_hash(routing: *const liminal_routing) -> u64 {
    read(routing, 0, |r| r.function.hash())
}

/// Release a routing handle (NULL is accepted). Groups using the function
/// keep it; its `free_user` runs when the last user lets go, or at the
/// runtime's shutdown if that comes first.
#[no_mangle]
pub extern "C" fn liminal_routing_free(routing: *mut liminal_routing) {
    // SAFETY: NULL or a live handle given up by the caller.
    unsafe { free_handle(routing) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn state(id: &Arc<str>, tags: &Arc<[String]>, in_flight: u32) -> ConsumerState {
        ConsumerState {
            id: Arc::clone(id),
            in_flight,
            max_in_flight: 4,
            buffer_depth: 0,
            tags: Arc::clone(tags),
        }
    }

    fn first_tag(table: &ViewTable) -> String {
        // SAFETY: the table owns the strings its views point to.
        unsafe { CStr::from_ptr(*table.views[0].tags) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn refresh_keeps_the_strings_while_the_consumers_are_the_same() {
        let id: Arc<str> = Arc::from("a");
        let tags: Arc<[String]> = Arc::from(vec!["x".to_owned()]);
        let mut table = ViewTable::new(&[state(&id, &tags, 0)]);
        let made = table.views[0].id;
        table.refresh(&[state(&id, &tags, 3)]);
        assert_eq!(table.views[0].id, made, "strings reused");
        assert_eq!(table.views[0].in_flight, 3, "numbers refreshed");

        let retagged: Arc<[String]> = Arc::from(vec!["y".to_owned()]);
        table.refresh(&[state(&id, &retagged, 1)]);
        assert_eq!(first_tag(&table), "y");

        let joined: Arc<str> = Arc::from("b");
        table.refresh(&[state(&id, &retagged, 1), state(&joined, &tags, 2)]);
        assert_eq!(table.views.len(), 2);
        assert_eq!(table.views[1].in_flight, 2);
    }
}
