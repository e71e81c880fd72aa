//! One API-sequence input, run against the C ABI: the engine shared by the
//! fuzz target (`api_sequence.rs`) and the shutdown stress test
//! (`tests/shutdown_race.rs`, which includes this file by path).
//!
//! An input is read as random sequences of C-ABI calls: options objects
//! with random (and invalid) values for runtime, groups, consumers and
//! dispatches; create / register / update / crash / leave / look up / free
//! consumers; dispatch (blocking with a timeout, asynchronous with
//! deadlines) into waiting rooms under every overflow policy; answer
//! deliveries (ack, crash, release with a delay, extend the lease, or
//! never); deploy host routing functions; dead-letter and stats callbacks;
//! drain; statistics as JSON and Prometheus into random buffers; free
//! groups.
//!
//! Invariants checked on every input: every options setter answers OK or
//! INVALID_ARGUMENT, every accepted dispatch completes exactly once,
//! deliveries kept past the shutdown can no longer be answered, and every
//! callback `user` has been freed exactly once by the time
//! `liminal_runtime_free` returned (counted per kind of callback, so a
//! failure names its callback; a late `free_user` is recorded with its
//! thread).
#![allow(dead_code, clippy::missing_safety_doc)]

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use liminal::ffi::callbacks::*;
use liminal::ffi::consumer::*;
use liminal::ffi::delivery::*;
use liminal::ffi::dispatch::*;
use liminal::ffi::error::liminal_status;
use liminal::ffi::group::*;
use liminal::ffi::message::*;
use liminal::ffi::outcome::*;
use liminal::ffi::routing::*;
use liminal::ffi::runtime::*;
use liminal::ffi::snapshot::*;

use liminal_status::{LIMINAL_INVALID_ARGUMENT, LIMINAL_OK};

/// Generous, so that a trivial routing call descheduled on a busy machine
/// never times out (a timed-out call may legitimately free its `user` after
/// `liminal_runtime_free` returned, which this target counts as a leak).
const ROUTING_TIMEOUT_MS: u64 = 1000;

/// Which callback a `user` pointer was handed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A consumer's delivery callback.
    Delivery,
    /// A consumer's crash callback.
    Crash,
    /// An asynchronous dispatch's completion callback.
    Completion,
    /// A host routing function.
    Routing,
    /// A group's dead-letter callback.
    DeadLetter,
    /// The runtime's statistics callback.
    Stats,
}

impl Kind {
    /// Every kind, in index order.
    pub const ALL: [Kind; 6] = [
        Kind::Delivery,
        Kind::Crash,
        Kind::Completion,
        Kind::Routing,
        Kind::DeadLetter,
        Kind::Stats,
    ];
}

/// What one input did, for the invariants checked after it.
#[derive(Default)]
pub struct Run {
    /// Live `user` allocations per [`Kind`] (index = position in `Kind::ALL`).
    live: [AtomicI64; 6],
    /// Dispatch id -> each completion seen: its status, its thread, and
    /// whether it came after `liminal_runtime_free` returned.
    completions: Mutex<HashMap<u64, Vec<Completion>>>,
    /// The calls this input made, one line per step, for a failure message.
    trace: Mutex<Vec<String>>,
    /// Deliveries kept by deferring consumers (owned handles, as addresses).
    kept: Mutex<Vec<usize>>,
    /// Set once `liminal_runtime_free` returned.
    runtime_freed: AtomicBool,
    /// `free_user` calls that ran after `liminal_runtime_free` returned:
    /// which kind, on which thread.
    late: Mutex<Vec<(Kind, String)>>,
    /// What [`Run::leaked`] said right after `liminal_runtime_free` returned.
    leaked_at_free: Mutex<Vec<(Kind, i64)>>,
}

/// One completion callback call.
#[derive(Clone, Debug)]
pub struct Completion {
    status: liminal_status,
    thread: String,
    after_free: bool,
}

impl Run {
    fn trace(&self, line: String) {
        self.trace.lock().unwrap().push(line);
    }

    /// `user` pointers of each kind not freed yet (only kinds with any).
    pub fn leaked(&self) -> Vec<(Kind, i64)> {
        Kind::ALL
            .iter()
            .zip(&self.live)
            .map(|(kind, live)| (*kind, live.load(Ordering::SeqCst)))
            .filter(|(_, live)| *live != 0)
            .collect()
    }

    /// `user` pointers of each kind that were not freed yet when
    /// `liminal_runtime_free` returned: must be empty.
    pub fn leaked_at_free(&self) -> Vec<(Kind, i64)> {
        self.leaked_at_free.lock().unwrap().clone()
    }

    /// `free_user` calls that came after `liminal_runtime_free` returned.
    pub fn late(&self) -> Vec<(Kind, String)> {
        self.late.lock().unwrap().clone()
    }
}

/// A callback's `user`: what it does, which kind it is, and its run.
struct User {
    mode: Mode,
    kind: Kind,
    run: Arc<Run>,
}

/// What a push consumer answers, or what a routing function does.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Ack,
    Crash,
    /// Keep the delivery (answered later by a step, or never).
    Defer,
    /// Return `LIMINAL_VERDICT_RELEASE`.
    Release,
    /// `liminal_delivery_release` with a delay, then defer.
    ReleaseLater(u64),
    /// A value that is not a verdict (a crash).
    Invalid(i32),
    /// Routing: select the first view / an unknown id / fail / none.
    Route(u8),
    /// Callbacks that only count.
    Plain,
}

fn user(run: &Arc<Run>, kind: Kind, mode: Mode) -> *mut c_void {
    run.live[kind as usize].fetch_add(1, Ordering::SeqCst);
    Box::into_raw(Box::new(User {
        mode,
        kind,
        run: Arc::clone(run),
    }))
    .cast()
}

unsafe extern "C" fn free_user(user: *mut c_void) {
    let user = Box::from_raw(user.cast::<User>());
    if user.run.runtime_freed.load(Ordering::SeqCst) {
        let thread = std::thread::current();
        let name = thread
            .name()
            .map_or_else(|| format!("{:?}", thread.id()), str::to_owned);
        user.run.late.lock().unwrap().push((user.kind, name));
    }
    user.run.live[user.kind as usize].fetch_sub(1, Ordering::SeqCst);
}

/// The user behind a callback's `user` pointer.
unsafe fn user_of<'a>(user: *mut c_void) -> &'a User {
    &*user.cast::<User>()
}

fn keep(run: &Run, delivery: *const liminal_delivery) {
    let mut kept = null_mut();
    if liminal_delivery_keep(delivery, &mut kept) == LIMINAL_OK {
        run.kept.lock().unwrap().push(kept as usize);
    }
}

unsafe extern "C" fn on_delivery(
    user: *mut c_void,
    delivery: *mut liminal_delivery,
) -> liminal_verdict {
    let user = user_of(user);
    let mode = user.mode;
    let _ = liminal_delivery_message(delivery);
    assert!(liminal_delivery_attempt(delivery) >= 1);
    match mode {
        Mode::Ack => LIMINAL_VERDICT_ACK,
        Mode::Crash => LIMINAL_VERDICT_CRASH,
        Mode::Release => LIMINAL_VERDICT_RELEASE,
        Mode::ReleaseLater(delay) => {
            let _ = liminal_delivery_release(delivery, delay);
            LIMINAL_VERDICT_DEFER
        }
        Mode::Invalid(value) => value,
        _ => {
            keep(&user.run, delivery);
            LIMINAL_VERDICT_DEFER
        }
    }
}

unsafe extern "C" fn on_crash(
    _user: *mut c_void,
    id: *const c_char,
    kind: liminal_crash_kind,
    reason: *const c_char,
    alive: bool,
) {
    assert!(!id.is_null() && !reason.is_null());
    assert!(!alive || kind == liminal_crash_kind::LIMINAL_CRASH_LEASE_EXPIRED);
}

unsafe extern "C" fn on_complete(
    user: *mut c_void,
    status: liminal_status,
    outcome: *const liminal_outcome,
) {
    assert_eq!(liminal_outcome_status(outcome), status);
    assert_eq!(
        status == LIMINAL_OK,
        !liminal_outcome_delivered_to(outcome).is_null()
    );
    let id = liminal_outcome_dispatch_id(outcome);
    let run = &user_of(user).run;
    let completion = Completion {
        status,
        thread: std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned(),
        after_free: run.runtime_freed.load(Ordering::SeqCst),
    };
    run.completions
        .lock()
        .unwrap()
        .entry(id)
        .or_default()
        .push(completion);
}

unsafe extern "C" fn on_dead_letter(
    _user: *mut c_void,
    message: *const liminal_message,
    trail: *const liminal_outcome,
) {
    assert!(!message.is_null());
    assert_ne!(liminal_outcome_status(trail), LIMINAL_OK);
    assert!(liminal_outcome_delivered_to(trail).is_null());
}

unsafe extern "C" fn on_stats(_user: *mut c_void, json: *const c_char, len: usize) {
    assert!(!json.is_null() && len > 0);
}

unsafe extern "C" fn route(
    user: *mut c_void,
    _message: *const liminal_message,
    views: *const liminal_consumer_view,
    count: usize,
    selected: *mut *const c_char,
) -> liminal_route_result {
    let Mode::Route(choice) = user_of(user).mode else {
        return LIMINAL_ROUTE_FAILED;
    };
    match choice {
        0 if count > 0 => {
            *selected = (*views.add(count - 1)).id;
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
    fn flag(&mut self) -> bool {
        self.byte() % 2 == 0
    }
    /// Milliseconds: mostly 0 ("none"/"default"), else 1..=`max`.
    fn millis(&mut self, max: u64) -> u64 {
        match self.byte() {
            b if b < 128 => 0,
            b => u64::from(b - 128) % max + 1,
        }
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

/// A setter's answer: valid values are taken, invalid ones refused.
fn setter(status: liminal_status) {
    assert!(
        status == LIMINAL_OK || status == LIMINAL_INVALID_ARGUMENT,
        "options setter answered {status:?}"
    );
}

/// Answer an owned delivery at random (or not at all), then free it.
fn answer(input: &mut Input<'_>, delivery: *mut liminal_delivery) {
    let _ = match input.byte() % 6 {
        0 => liminal_delivery_crash(delivery, c"fuzz".as_ptr()),
        1 => liminal_delivery_release(delivery, input.millis(20)),
        2 => liminal_delivery_extend_lease(delivery, input.millis(50)),
        3 => LIMINAL_OK, // never answered
        _ => liminal_delivery_ack(delivery),
    };
    liminal_delivery_free(delivery);
}

unsafe fn group_options(input: &mut Input<'_>) -> *mut liminal_group_options {
    let mut options = null_mut();
    assert_eq!(liminal_group_options_new(&mut options), LIMINAL_OK);
    for _ in 0..input.byte() % 8 {
        match input.byte() % 9 {
            0 => {
                let name = input.c_string();
                if name.is_some() {
                    setter(liminal_group_options_set_name(options, ptr(&name)));
                }
            }
            1 => setter(liminal_group_options_set_max_attempts(
                options,
                u32::from(input.byte() % 4),
            )),
            2 => setter(liminal_group_options_set_count_holding_crashes(
                options,
                input.flag(),
            )),
            3 => setter(liminal_group_options_set_auto_ack_ms(
                options,
                input.millis(20),
            )),
            4 => setter(liminal_group_options_set_waiting_room(
                options,
                usize::from(input.byte() % 4),
            )),
            5 => {
                let policy = i32::from(input.byte() % 5);
                setter(liminal_group_options_set_overflow(
                    options,
                    policy,
                    input.millis(20),
                ));
            }
            6 => setter(liminal_group_options_set_deadline_ms(
                options,
                input.millis(50),
            )),
            7 => setter(liminal_group_options_set_ack_lease_ms(
                options,
                input.millis(50),
            )),
            _ => setter(liminal_group_options_set_lease_policy(
                options,
                i32::from(input.byte() % 4),
            )),
        }
    }
    options
}

unsafe fn consumer_options(input: &mut Input<'_>) -> *mut liminal_consumer_options {
    let mut options = null_mut();
    assert_eq!(liminal_consumer_options_new(&mut options), LIMINAL_OK);
    setter(liminal_consumer_options_set_max_in_flight(
        options,
        u32::from(input.byte() % 5),
    ));
    setter(liminal_consumer_options_set_buffer_depth(
        options,
        u32::from(input.byte()),
    ));
    let tag = input.c_string();
    if tag.is_some() {
        let tags = [ptr(&tag)];
        setter(liminal_consumer_options_set_tags(
            options,
            tags.as_ptr(),
            usize::from(input.byte() % 2),
        ));
    }
    setter(liminal_consumer_options_set_ack_lease_ms(
        options,
        input.millis(50),
    ));
    options
}

unsafe fn dispatch_options(input: &mut Input<'_>, blocking: bool) -> *mut liminal_dispatch_options {
    let mut options = null_mut();
    assert_eq!(liminal_dispatch_options_new(&mut options), LIMINAL_OK);
    setter(liminal_dispatch_options_set_deadline_ms(
        options,
        input.millis(50),
    ));
    // A blocking dispatch always has a timeout: with no consumer free it
    // would otherwise wait as long as it takes.
    let timeout = if blocking {
        input.millis(20).max(1)
    } else {
        input.millis(20)
    };
    setter(liminal_dispatch_options_set_timeout_ms(options, timeout));
    options
}

/// Run one input: a fresh runtime, up to 64 steps, every handle freed, the
/// runtime freed. Panics when an invariant other than `user` accounting
/// fails; the returned [`Run`] tells which `user` pointers were not freed by
/// the time `liminal_runtime_free` returned ([`Run::leaked_at_free`]), and
/// which were freed later, on which thread ([`Run::late`]).
pub fn run(data: &[u8]) -> Arc<Run> {
    let run = Arc::new(Run::default());
    // SAFETY: every handle is used only while live, per the header.
    unsafe { steps(data, &run) };
    run
}

unsafe fn steps(data: &[u8], run: &Arc<Run>) {
    let mut input = Input(data);

    let mut options = null_mut();
    assert_eq!(liminal_runtime_options_new(&mut options), LIMINAL_OK);
    assert_eq!(
        liminal_runtime_options_set_routing_timeout_ms(options, ROUTING_TIMEOUT_MS),
        LIMINAL_OK
    );
    setter(liminal_runtime_options_set_scheduler_threads(
        options,
        u32::from(input.byte() % 3),
    ));
    let spin = [0, 20, 200, 1_000_001][usize::from(input.byte() % 4)];
    setter(liminal_runtime_options_set_spin_us(options, spin));
    let linger = [0, 1_000, 50_000, 10_000_001][usize::from(input.byte() % 4)];
    setter(liminal_runtime_options_set_linger_us(options, linger));
    let mut runtime = null_mut();
    assert_eq!(liminal_runtime_new(options, &mut runtime), LIMINAL_OK);
    liminal_runtime_options_free(options);

    let mut groups: Vec<*mut liminal_group> = Vec::new();
    let mut consumers: Vec<(*mut liminal_consumer, usize, bool)> = Vec::new(); // (handle, group, pull)
    let mut messages: Vec<*mut liminal_message> = Vec::new();
    let mut accepted: Vec<u64> = Vec::new();
    let mut steps = 0;
    while !input.0.is_empty() && steps < 64 {
        steps += 1;
        let op = input.byte() % 18;
        run.trace(format!(
            "step {steps}: op {op} ({} groups, {} consumers, {} messages, {} accepted)",
            groups.len(),
            consumers.len(),
            messages.len(),
            accepted.len()
        ));
        match op {
            0 if groups.len() < 3 => {
                let mut routing = null_mut();
                let kind = i32::from(input.byte() % 5);
                let field = input.c_string();
                if liminal_routing_builtin(kind, ptr(&field), &mut routing) == LIMINAL_OK {
                    let options = if input.flag() {
                        group_options(&mut input)
                    } else {
                        null_mut()
                    };
                    let mut group = null_mut();
                    let status = liminal_group_new(runtime, routing, options, &mut group);
                    run.trace(format!("  group_new (builtin {kind}): {status:?}"));
                    if status == LIMINAL_OK {
                        groups.push(group);
                    } else {
                        assert!(group.is_null());
                    }
                    liminal_group_options_free(options);
                    liminal_routing_free(routing);
                }
            }
            1 if !groups.is_empty() && consumers.len() < 12 => {
                let g = input.byte() as usize % groups.len();
                let id = input.c_string();
                let mode = match input.byte() % 8 {
                    0 | 1 => Some(Mode::Ack),
                    2 => Some(Mode::Crash),
                    3 => Some(Mode::Defer),
                    4 => Some(Mode::Release),
                    5 => Some(Mode::ReleaseLater(input.millis(20))),
                    6 => Some(Mode::Invalid([0, 5, -1][usize::from(input.byte() % 3)])),
                    _ => None, // pull mode
                };
                let delivery = match mode {
                    Some(mode) => liminal_delivery_callback {
                        function: Some(on_delivery),
                        user: user(run, Kind::Delivery, mode),
                        free_user: Some(free_user),
                    },
                    None => liminal_delivery_callback {
                        function: None,
                        user: null_mut(),
                        free_user: None,
                    },
                };
                let crash = liminal_crash_callback {
                    function: Some(on_crash),
                    user: user(run, Kind::Crash, Mode::Plain),
                    free_user: Some(free_user),
                };
                let options = if input.flag() {
                    consumer_options(&mut input)
                } else {
                    null_mut()
                };
                let mut consumer = null_mut();
                let status = liminal_consumer_register(
                    groups[g],
                    ptr(&id),
                    delivery,
                    crash,
                    options,
                    &mut consumer,
                );
                liminal_consumer_options_free(options);
                run.trace(format!("  register in group {g}: {mode:?}: {status:?}"));
                if status == LIMINAL_OK {
                    consumers.push((consumer, g, mode.is_none()));
                } else {
                    assert!(consumer.is_null());
                }
            }
            2 if !consumers.is_empty() => {
                let reason = input.c_string();
                let _ = liminal_consumer_crash(
                    consumers[input.byte() as usize % consumers.len()].0,
                    ptr(&reason),
                );
            }
            3 if !consumers.is_empty() => {
                let _ =
                    liminal_consumer_leave(consumers[input.byte() as usize % consumers.len()].0);
            }
            4 if !consumers.is_empty() => {
                let (c, _, _) = consumers.swap_remove(input.byte() as usize % consumers.len());
                liminal_consumer_free(c);
            }
            5 if messages.len() < 4 => {
                let mut message = null_mut();
                assert_eq!(liminal_message_new(&mut message), LIMINAL_OK);
                for _ in 0..input.byte() % 6 {
                    let name = input.c_string();
                    let _ = match input.byte() % 5 {
                        0 => liminal_message_set_int(message, ptr(&name), i64::from(input.byte())),
                        1 => liminal_message_set_double(
                            message,
                            ptr(&name),
                            f64::from(input.byte()) / 0.0,
                        ),
                        2 => liminal_message_set_bool(message, ptr(&name), input.flag()),
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
                let _ =
                    liminal_message_fields_json(message, json.as_mut_ptr(), json.len(), &mut len);
                messages.push(message);
            }
            6 | 7 if !groups.is_empty() && !messages.is_empty() => {
                let g = input.byte() as usize % groups.len();
                let m = messages[input.byte() as usize % messages.len()];
                let blocking = input.flag();
                let options = if blocking || input.flag() {
                    dispatch_options(&mut input, blocking)
                } else {
                    null_mut()
                };
                if blocking {
                    let mut outcome = null_mut();
                    let status = liminal_group_dispatch(groups[g], m, options, &mut outcome);
                    run.trace(format!("  dispatch (blocking) to group {g}: {status:?}"));
                    if status == LIMINAL_OK {
                        assert!(!liminal_outcome_delivered_to(outcome).is_null());
                        liminal_outcome_free(outcome);
                    } else {
                        assert!(outcome.is_null());
                    }
                } else {
                    let mut id = 0;
                    let callback = liminal_completion_callback {
                        function: Some(on_complete),
                        user: user(run, Kind::Completion, Mode::Plain),
                        free_user: Some(free_user),
                    };
                    let status =
                        liminal_group_dispatch_async(groups[g], m, options, callback, &mut id);
                    run.trace(format!(
                        "  dispatch_async to group {g}: {status:?}, id {id}"
                    ));
                    if status == LIMINAL_OK {
                        accepted.push(id);
                    }
                }
                liminal_dispatch_options_free(options);
            }
            8 => {
                let kept = run.kept.lock().unwrap().pop();
                if let Some(kept) = kept {
                    answer(&mut input, kept as *mut liminal_delivery);
                }
                for &(c, _, pull) in &consumers {
                    let mut delivery = null_mut();
                    if pull && liminal_consumer_next_delivery(c, 0, &mut delivery) == LIMINAL_OK {
                        answer(&mut input, delivery);
                    }
                }
            }
            9 if !groups.is_empty() => {
                let callback = liminal_route_callback {
                    function: Some(route),
                    user: user(run, Kind::Routing, Mode::Route(input.byte() % 4)),
                    free_user: Some(free_user),
                };
                let identity = input.bytes(4);
                let mut routing = null_mut();
                if liminal_routing_new(
                    runtime,
                    callback,
                    identity.as_ptr(),
                    identity.len(),
                    null(),
                    &mut routing,
                ) == LIMINAL_OK
                {
                    let _ =
                        liminal_group_deploy(groups[input.byte() as usize % groups.len()], routing);
                    liminal_routing_free(routing);
                }
            }
            10 if !groups.is_empty() => {
                let g = input.byte() as usize % groups.len();
                run.trace(format!("  group_free {g}"));
                liminal_group_free(groups.remove(g));
                // Keep indexes stable: the freed group's consumers go with it.
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
                let _ = liminal_consumer_set_max_in_flight(c, u32::from(input.byte() % 4));
                let mut in_flight = 0;
                let _ = liminal_consumer_in_flight(c, &mut in_flight);
                let _ = (liminal_consumer_is_alive(c), liminal_consumer_is_paused(c));
            }
            12 if !groups.is_empty() => {
                let g = groups[input.byte() as usize % groups.len()];
                let mut snapshot = null_mut();
                if liminal_group_snapshot(g, &mut snapshot) == LIMINAL_OK {
                    let mut view = std::mem::zeroed();
                    let _ = liminal_snapshot_get(snapshot, usize::from(input.byte()), &mut view);
                    liminal_snapshot_free(snapshot);
                }
                let (mut waiting, mut in_flight, mut count) = (0, 0, 0);
                let _ = liminal_group_waiting(g, &mut waiting);
                let _ = liminal_group_in_flight(g, &mut in_flight);
                let _ = liminal_group_consumer_count(g, &mut count);
                // Look a consumer up by a random id, or by a live one's.
                let id = match consumers.first() {
                    Some((c, _, _)) if input.flag() => {
                        Some(std::ffi::CStr::from_ptr(liminal_consumer_id(*c)).to_owned())
                    }
                    _ => input.c_string(),
                };
                let mut found = null_mut();
                if liminal_group_consumer(g, ptr(&id), &mut found) == LIMINAL_OK {
                    let _ = liminal_consumer_crash_at_next_delivery(found);
                    liminal_consumer_free(found);
                }
            }
            13 if !consumers.is_empty() => {
                let _ = liminal_consumer_crash_at_next_delivery(
                    consumers[input.byte() as usize % consumers.len()].0,
                );
            }
            14 if !groups.is_empty() => {
                let g = groups[input.byte() as usize % groups.len()];
                let callback = if input.byte() % 4 == 0 {
                    liminal_dead_letter_callback {
                        function: None,
                        user: null_mut(),
                        free_user: None,
                    }
                } else {
                    liminal_dead_letter_callback {
                        function: Some(on_dead_letter),
                        user: user(run, Kind::DeadLetter, Mode::Plain),
                        free_user: Some(free_user),
                    }
                };
                let _ = liminal_group_set_dead_letter(g, callback);
            }
            15 => {
                let mut left = 0;
                let timeout = u64::from(input.byte() % 4);
                let status = if groups.is_empty() || input.byte() % 4 == 0 {
                    liminal_runtime_drain(runtime, timeout, &mut left)
                } else {
                    liminal_group_drain(
                        groups[input.byte() as usize % groups.len()],
                        timeout,
                        &mut left,
                    )
                };
                run.trace(format!("  drain, timeout {timeout} ms: {left} left"));
                assert!(status == LIMINAL_OK, "drain answered {status:?}");
            }
            16 => {
                let mut buffer = vec![0 as c_char; usize::from(input.byte()) * 8];
                let mut len = 0;
                let status = if input.flag() {
                    liminal_runtime_stats_json(runtime, buffer.as_mut_ptr(), buffer.len(), &mut len)
                } else {
                    liminal_runtime_stats_prometheus(
                        runtime,
                        buffer.as_mut_ptr(),
                        buffer.len(),
                        &mut len,
                    )
                };
                assert!(matches!(
                    status,
                    LIMINAL_OK | liminal_status::LIMINAL_BUFFER_TOO_SMALL
                ));
                assert_eq!(status == LIMINAL_OK, len < buffer.len());
                let mut metrics = std::mem::zeroed();
                assert_eq!(liminal_runtime_metrics(runtime, &mut metrics), LIMINAL_OK);
            }
            17 => {
                let callback = if input.byte() % 4 == 0 {
                    liminal_stats_callback {
                        function: None,
                        user: null_mut(),
                        free_user: None,
                    }
                } else {
                    liminal_stats_callback {
                        function: Some(on_stats),
                        user: user(run, Kind::Stats, Mode::Plain),
                        free_user: Some(free_user),
                    }
                };
                let interval = [0, 10, 25][usize::from(input.byte() % 3)];
                let _ = liminal_runtime_set_stats_callback(runtime, interval, callback);
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
    assert_eq!(liminal_runtime_free(runtime), LIMINAL_OK);
    run.runtime_freed.store(true, Ordering::SeqCst);
    // What was live when the runtime's free returned (the promise), before
    // the kept deliveries (owned by this host) are answered and freed.
    let leaked = run.leaked();
    let kept: Vec<usize> = run.kept.lock().unwrap().drain(..).collect();
    for kept in kept {
        let delivery = kept as *mut liminal_delivery;
        assert_ne!(liminal_delivery_ack(delivery), LIMINAL_OK);
        liminal_delivery_free(delivery);
    }
    // Every accepted dispatch completed exactly once.
    if std::env::var_os("LIMINAL_FUZZ_TRACE").is_some() {
        eprintln!("{}", run.trace.lock().unwrap().join("\n"));
    }
    let completions = std::mem::take(&mut *run.completions.lock().unwrap());
    for id in &accepted {
        let seen = completions.get(id).map_or(&[][..], Vec::as_slice);
        if seen.is_empty() {
            // Diagnostic for a failure already found, not a synchronisation:
            // did it come later, and on which thread?
            for _ in 0..200 {
                if run.completions.lock().unwrap().contains_key(id) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let late = run.completions.lock().unwrap().get(id).cloned();
            panic!(
                "dispatch {id}: no completion by liminal_runtime_free's return; 2 s later: {late:?}\ntrace:\n{}",
                run.trace.lock().unwrap().join("\n")
            );
        }
        assert!(
            seen.len() == 1 && !seen[0].after_free,
            "dispatch {id}: {} completion(s) by liminal_runtime_free's return, expected 1: {seen:?}\ntrace:\n{}",
            seen.len(),
            run.trace.lock().unwrap().join("\n")
        );
    }
    // A completion names its own dispatch (an emptied outcome, dispatch id
    // 0, once stood in for another's: two finishers raced).
    let strangers: Vec<&u64> = completions
        .keys()
        .filter(|id| !accepted.contains(id))
        .collect();
    assert!(
        strangers.is_empty(),
        "completions for dispatches never accepted: {strangers:?} ({completions:?})"
    );
    assert_eq!(completions.len(), accepted.len());
    *run.leaked_at_free.lock().unwrap() = leaked;
}
