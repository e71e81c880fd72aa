//! Random sequences of C-ABI calls: create / register / update / crash /
//! leave / dispatch (blocking and asynchronous) / ack / deploy / free, with
//! random field values, sizes and malformed strings.
//!
//! Invariants checked on every input: no crash or UB (built with ASan), every
//! accepted dispatch completes exactly once, every callback `user` is freed
//! exactly once, and the runtime shuts down with nothing outstanding.
#![no_main]

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use liminal::ffi::consumer::*;
use liminal::ffi::dispatch::*;
use liminal::ffi::error::liminal_status;
use liminal::ffi::group::*;
use liminal::ffi::message::*;
use liminal::ffi::routing::*;
use liminal::ffi::runtime::*;

/// Live callback `user` allocations (must be zero after each input).
static LIVE_USERS: AtomicI64 = AtomicI64::new(0);
/// Dispatch id -> completions seen.
static COMPLETIONS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);
/// Deliveries kept by deferring consumers (owned handles, as addresses).
static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());

struct Behaviour {
    verdict: liminal_verdict,
}

fn user(behaviour: Behaviour) -> *mut c_void {
    LIVE_USERS.fetch_add(1, Ordering::SeqCst);
    Box::into_raw(Box::new(behaviour)).cast()
}

unsafe extern "C" fn free_user(user: *mut c_void) {
    LIVE_USERS.fetch_sub(1, Ordering::SeqCst);
    drop(Box::from_raw(user.cast::<Behaviour>()));
}

unsafe extern "C" fn on_delivery(user: *mut c_void, delivery: *mut liminal_delivery) -> liminal_verdict {
    let behaviour = &*user.cast::<Behaviour>();
    let _ = liminal_delivery_message(delivery);
    if behaviour.verdict == LIMINAL_VERDICT_DEFER {
        let mut kept = null_mut();
        if liminal_delivery_keep(delivery, &mut kept) == liminal_status::LIMINAL_OK {
            KEPT.lock().unwrap().push(kept as usize);
        }
    }
    behaviour.verdict
}

unsafe extern "C" fn on_crash(_user: *mut c_void, id: *const c_char, reason: *const c_char) {
    assert!(!id.is_null() && !reason.is_null());
}

unsafe extern "C" fn on_complete(_user: *mut c_void, status: liminal_status, outcome: *const liminal_outcome) {
    assert_eq!(liminal_outcome_status(outcome), status);
    let id = liminal_outcome_dispatch_id(outcome);
    *COMPLETIONS.lock().unwrap().get_or_insert_with(HashMap::new).entry(id).or_default() += 1;
}

unsafe extern "C" fn route(
    user: *mut c_void,
    _message: *const liminal_message,
    views: *const liminal_consumer_view,
    count: usize,
    selected: *mut *const c_char,
) -> liminal_route_result {
    let behaviour = &*user.cast::<Behaviour>();
    match behaviour.verdict {
        0 if count > 0 => {
            *selected = (*views).id;
            LIMINAL_ROUTE_SELECTED
        }
        1 => {
            *selected = c"no-such-consumer".as_ptr();
            LIMINAL_ROUTE_SELECTED
        }
        2 => LIMINAL_ROUTE_FAILED,
        _ => LIMINAL_ROUTE_NONE,
    }
}

struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.byte() as usize).min(max).min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken.to_vec()
    }
    /// A C string from the input (may be empty or invalid UTF-8), or NULL.
    fn c_string(&mut self) -> Option<CString> {
        if self.byte() % 16 == 0 {
            return None;
        }
        let mut bytes = self.bytes(12);
        bytes.retain(|b| *b != 0);
        Some(CString::new(bytes).unwrap())
    }
}

fn ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(null(), |s| s.as_ptr())
}

fuzz_target!(|data: &[u8]| unsafe {
    let mut input = Input(data);
    *COMPLETIONS.lock().unwrap() = Some(HashMap::new());
    let mut runtime = null_mut();
    assert_eq!(liminal_runtime_new(1, 20, &mut runtime), liminal_status::LIMINAL_OK);
    let mut groups: Vec<*mut liminal_group> = Vec::new();
    // Per group: no consumer that waits for the host was ever registered.
    let mut blocking_ok: Vec<bool> = Vec::new();
    let mut consumers: Vec<(*mut liminal_consumer, usize, u8)> = Vec::new(); // (handle, group, mode)
    let mut messages: Vec<*mut liminal_message> = Vec::new();
    let mut accepted: Vec<u64> = Vec::new();
    let mut steps = 0;
    while !input.0.is_empty() && steps < 64 {
        steps += 1;
        match input.byte() % 14 {
            0 if groups.len() < 3 => {
                let mut routing = null_mut();
                let kind = (input.byte() % 5) as i32;
                let field = input.c_string();
                if liminal_routing_builtin(kind, ptr(&field), &mut routing) == liminal_status::LIMINAL_OK {
                    let mut group = null_mut();
                    let window = if input.byte() % 8 == 0 { 1 } else { 0 };
                    if liminal_group_new(runtime, routing, u32::from(input.byte() % 4), window, &mut group)
                        == liminal_status::LIMINAL_OK
                    {
                        groups.push(group);
                        blocking_ok.push(true);
                    }
                    liminal_routing_free(routing);
                }
            }
            1 if !groups.is_empty() && consumers.len() < 12 => {
                let g = input.byte() as usize % groups.len();
                let id = input.c_string();
                let tag = input.c_string();
                let tags = [ptr(&tag)];
                let mode = input.byte() % 4;
                let pull = mode == 3;
                let delivery = if pull {
                    liminal_delivery_callback { function: None, user: null_mut(), free_user: None }
                } else {
                    liminal_delivery_callback {
                        function: Some(on_delivery),
                        user: user(Behaviour { verdict: i32::from(mode) }),
                        free_user: Some(free_user),
                    }
                };
                let crash = liminal_crash_callback {
                    function: Some(on_crash),
                    user: user(Behaviour { verdict: 0 }),
                    free_user: Some(free_user),
                };
                let mut consumer = null_mut();
                let status = liminal_consumer_register(
                    groups[g],
                    ptr(&id),
                    u32::from(input.byte() % 5),
                    u32::from(input.byte()),
                    tags.as_ptr(),
                    usize::from(input.byte() % 2),
                    delivery,
                    crash,
                    &mut consumer,
                );
                if status == liminal_status::LIMINAL_OK {
                    consumers.push((consumer, g, mode));
                    blocking_ok[g] &= mode <= 1;
                } else {
                    assert!(consumer.is_null());
                }
            }
            2 if !consumers.is_empty() => {
                let reason = input.c_string();
                let _ = liminal_consumer_crash(consumers[input.byte() as usize % consumers.len()].0, ptr(&reason));
            }
            3 if !consumers.is_empty() => {
                let _ = liminal_consumer_leave(consumers[input.byte() as usize % consumers.len()].0);
            }
            4 if !consumers.is_empty() => {
                let (c, _, _) = consumers.swap_remove(input.byte() as usize % consumers.len());
                liminal_consumer_free(c);
            }
            5 if messages.len() < 4 => {
                let mut message = null_mut();
                assert_eq!(liminal_message_new(&mut message), liminal_status::LIMINAL_OK);
                for _ in 0..input.byte() % 6 {
                    let name = input.c_string();
                    let _ = match input.byte() % 5 {
                        0 => liminal_message_set_int(message, ptr(&name), i64::from(input.byte())),
                        1 => liminal_message_set_double(message, ptr(&name), f64::from(input.byte()) / 0.0),
                        2 => liminal_message_set_bool(message, ptr(&name), input.byte() % 2 == 0),
                        3 => liminal_message_set_null(message, ptr(&name)),
                        _ => {
                            let value = input.c_string();
                            liminal_message_set_text(message, ptr(&name), ptr(&value))
                        }
                    };
                }
                let payload = vec![input.byte(); usize::from(input.byte()) * 64];
                let _ = liminal_message_set_payload(message, payload.as_ptr(), payload.len());
                let mut json = [0 as c_char; 32];
                let mut len = 0;
                let _ = liminal_message_fields_json(message, json.as_mut_ptr(), json.len(), &mut len);
                messages.push(message);
            }
            6 | 7 if !groups.is_empty() && !messages.is_empty() => {
                let g = input.byte() as usize % groups.len();
                let m = messages[input.byte() as usize % messages.len()];
                // A blocking dispatch only where every consumer answers by
                // itself (acks or crashes); otherwise asynchronous.
                if input.byte() % 2 == 0 && blocking_ok[g] {
                    let mut outcome = null_mut();
                    if liminal_group_dispatch(groups[g], m, &mut outcome) == liminal_status::LIMINAL_OK {
                        liminal_outcome_free(outcome);
                    }
                } else {
                    let mut id = 0;
                    let callback = liminal_completion_callback {
                        function: Some(on_complete),
                        user: user(Behaviour { verdict: 0 }),
                        free_user: Some(free_user),
                    };
                    if liminal_group_dispatch_async(groups[g], m, callback, &mut id) == liminal_status::LIMINAL_OK {
                        accepted.push(id);
                    }
                }
            }
            8 => {
                let kept = KEPT.lock().unwrap().pop();
                if let Some(kept) = kept {
                    let delivery = kept as *mut liminal_delivery;
                    let _ = if input.byte() % 4 == 0 {
                        liminal_delivery_crash(delivery, c"fuzz".as_ptr())
                    } else {
                        liminal_delivery_ack(delivery)
                    };
                    liminal_delivery_free(delivery);
                }
                for (c, _, mode) in &consumers {
                    if *mode == 3 {
                        let mut delivery = null_mut();
                        if liminal_consumer_next_delivery(*c, 0, &mut delivery) == liminal_status::LIMINAL_OK {
                            let _ = liminal_delivery_ack(delivery);
                            liminal_delivery_free(delivery);
                        }
                    }
                }
            }
            9 if !groups.is_empty() => {
                let callback = liminal_route_callback {
                    function: Some(route),
                    user: user(Behaviour { verdict: i32::from(input.byte() % 4) }),
                    free_user: Some(free_user),
                };
                let identity = input.bytes(4);
                let mut routing = null_mut();
                if liminal_routing_new(runtime, callback, identity.as_ptr(), identity.len(), null(), &mut routing)
                    == liminal_status::LIMINAL_OK
                {
                    let _ = liminal_group_deploy(groups[input.byte() as usize % groups.len()], routing);
                    liminal_routing_free(routing);
                }
            }
            10 if !groups.is_empty() => {
                let g = input.byte() as usize % groups.len();
                liminal_group_free(groups[g]);
                groups[g] = null_mut();
                // Keep indexes stable: a freed slot is dropped with its consumers' group.
                let freed = groups.remove(g);
                assert!(freed.is_null());
                blocking_ok.remove(g);
                consumers.retain_mut(|(c, cg, _)| {
                    if *cg == g {
                        liminal_consumer_free(*c);
                        return false;
                    }
                    if *cg > g {
                        *cg -= 1;
                    }
                    true
                });
            }
            11 if !consumers.is_empty() => {
                let c = consumers[input.byte() as usize % consumers.len()].0;
                let tag = input.c_string();
                let tags = [ptr(&tag)];
                let _ = liminal_consumer_set_tags(c, tags.as_ptr(), usize::from(input.byte() % 2));
                let _ = liminal_consumer_set_buffer_depth(c, u32::from(input.byte()));
            }
            12 if !groups.is_empty() => {
                let mut snapshot = null_mut();
                if liminal_group_snapshot(groups[0], &mut snapshot) == liminal_status::LIMINAL_OK {
                    let mut view = std::mem::zeroed();
                    let _ = liminal_snapshot_get(snapshot, usize::from(input.byte()), &mut view);
                    liminal_snapshot_free(snapshot);
                }
            }
            13 if !consumers.is_empty() => {
                let _ = liminal_consumer_crash_at_next_delivery(consumers[input.byte() as usize % consumers.len()].0);
            }
            _ => {}
        }
    }
    for group in groups {
        liminal_group_free(group);
    }
    for (c, _, _) in consumers {
        liminal_consumer_free(c);
    }
    for m in messages {
        liminal_message_free(m);
    }
    assert_eq!(liminal_runtime_free(runtime), liminal_status::LIMINAL_OK);
    for kept in KEPT.lock().unwrap().drain(..) {
        let delivery = kept as *mut liminal_delivery;
        assert_ne!(liminal_delivery_ack(delivery), liminal_status::LIMINAL_OK);
        liminal_delivery_free(delivery);
    }
    // Every accepted dispatch completed exactly once; every user was freed.
    let completions = COMPLETIONS.lock().unwrap().take().unwrap_or_default();
    for id in &accepted {
        assert_eq!(completions.get(id), Some(&1), "dispatch {id} completions");
    }
    assert_eq!(completions.len(), accepted.len());
    assert_eq!(LIVE_USERS.load(Ordering::SeqCst), 0, "callback users leaked");
});
